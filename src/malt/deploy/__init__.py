"""A trained run out of the lab: loaded for scoring, exported (ONNX, TorchScript), scoring
unlabelled data (`malt predict`)."""
