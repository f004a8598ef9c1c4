"""Training data: synthetic video with exact flow, flow pre-training pairs, CamVid, Cityscapes, .flo files.

Conventions shared by the whole package:

* Images are numpy uint8 H×W×3 in **BGR** order, as OpenCV decodes them (as :mod:`dff.sources`
  gives them); only :mod:`dff.data.pairs` turns them into RGB 3×H×W tensors.
* Labels are uint8 H×W class ids; :data:`IGNORE_INDEX` marks pixels without a class (CamVid's
  void, Cityscapes' ignored classes) and is left out of the loss and the metrics.
* Flow is float32 H×W×2 in image pixels, channel 0 horizontal, channel 1 vertical, and is
  **backward** as in the paper: M_{i→k} sends pixel p of the current frame i to p + M(p) in the
  key frame k (Section 3).

Only :mod:`dff.data.pairs` imports torch.
"""

from dff.errors import DFFError

#: Label value of pixels without a class.
IGNORE_INDEX = 255


class DatasetError(DFFError, ValueError):
    """A dataset file is missing, unreadable, or holds values the configuration does not allow."""
