"""The one default operating point shared by the Python API, the CLI and ``video.detect``.

A user comparing ``model(image)`` in a notebook with ``maskwatch detect image`` must see the same faces:
before these lived in one place the API used 0.25/0.45 and the CLI 0.5/0.4 (25 faces against 20 on the
same clip). 0.5 keeps the CLI's numbers: the default model scores true faces near 1.0, so a lower
threshold mainly adds false alarms; 0.4 is RetinaFace's NMS IoU (faces in a crowd overlap little).
"""

from __future__ import annotations

#: Minimum detection score.
CONF = 0.5
#: IoU above which non-maximum suppression drops the lower-scoring of two boxes.
IOU = 0.4
