"""Network builders (MONAI) for the classifier and the segmenter."""
