# Training: the NIH classifier and the SCR segmenter (GPU jobs on a cluster when train.device=cuda).
declare_stage_rules("train_classifier", "train_segmenter")
