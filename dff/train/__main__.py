"""``python -m dff.train CONFIG [--resume]``: ``dff train``, for ``torchrun --nproc_per_node N -m dff.train CONFIG``.

(F's pre-training runs the same way as ``torchrun … -m dff.cli train-flow CONFIG``.)
"""

import sys

from dff.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
