# Training: the NIH classifier, the SCR segmenter and the JSRT nodule models (GPU jobs on a cluster when train.device=cuda),
# and every other cell of the benchmark matrices (models x seeds: a job each).
declare_stage_rules("train_classifier", "train_segmenter", "train_nodules", *matrix_stages("benchmark_classifier"),
                    *matrix_stages("benchmark_segmenter"), *matrix_stages("benchmark_nodule_classifier"),
                    *matrix_stages("benchmark_nodule_heatmap"))
