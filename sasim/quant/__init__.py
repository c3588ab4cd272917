"""Fixed-point quantization of weights and activations for the array's integer arithmetic."""
