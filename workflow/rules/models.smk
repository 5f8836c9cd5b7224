# Training: the NIH classifier, the SCR segmenter and the JSRT nodule models (GPU jobs on a cluster when train.device=cuda).
declare_stage_rules("train_classifier", "train_segmenter", "train_nodules")
