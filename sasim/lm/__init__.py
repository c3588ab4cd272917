"""Language models: corpora, the AWD-LSTM-style model, training and evaluation."""
