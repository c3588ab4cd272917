"""``python -m sasim`` (and ``torchrun --nproc_per_node N -m sasim train ...``): the sasim command line."""

import sys

from sasim.cli import main

sys.exit(main())
