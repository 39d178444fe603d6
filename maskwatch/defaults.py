"""The one default operating point shared by the Python API, the CLI and ``video.detect``.

A user comparing ``model(image)`` in a notebook with ``maskwatch detect image`` must see the same faces:
before these lived in one place the API used 0.25/0.45 and the CLI 0.5/0.4 (25 faces against 20 on the
same Kaggle image). 0.5 keeps the CLI's numbers and is the better operating point measured: on the held-out
Kaggle test split (``maskwatch eval ... --split splits/face-mask-kaggle/test.txt --conf C``) F1 is
with_mask 91.1 / no_mask 84.3 at 0.5 against 89.7 / 81.8 at 0.25 (64 false alarms at 0.25, 30 at 0.5).
0.4 is RetinaFace's NMS IoU (faces in a crowd overlap little).
"""

from __future__ import annotations

#: Minimum detection score.
CONF = 0.5
#: IoU above which non-maximum suppression drops the lower-scoring of two boxes.
IOU = 0.4
#: Minimum score of a pre-label (``maskwatch data prelabel``): lower than :data:`CONF` on purpose, since a
#: person reviews every box and deleting a false box is cheaper than drawing a missed face.
PRELABEL_CONF = 0.3
