"""Detect faces in one image with MediaPipe's short-range face detector; print one JSON line.

Output: {"faces": N, "boxes": [[x, y, w, h, score], ...]} with coordinates as fractions of the
image size, largest face first; exit 0 whenever the image could be read.
"""

import json
import sys

import cv2
import mediapipe as mp


def main() -> int:
    image = cv2.imread(sys.argv[1], cv2.IMREAD_COLOR)
    if image is None:
        print(json.dumps({"error": "not a readable image"}))
        return 3
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    boxes = []
    # model_selection=1 is the full-range model: faces up to ~5 m, not only close-ups.
    for model in (0, 1):
        with mp.solutions.face_detection.FaceDetection(
            model_selection=model, min_detection_confidence=0.5
        ) as detector:
            result = detector.process(rgb)
        for det in result.detections or []:
            box = det.location_data.relative_bounding_box
            boxes.append([box.xmin, box.ymin, box.width, box.height, det.score[0]])
        if boxes:
            break
    boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
    print(json.dumps({"faces": len(boxes), "boxes": [[round(v, 4) for v in b] for b in boxes]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
