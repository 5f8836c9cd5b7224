# Benchmark evaluation, the leaderboards of the models x seeds matrices, and the report next to the published results.
declare_stage_rules("assess_labels", "evaluate_classifier", "evaluate_segmenter", "evaluate_localisation",
                    "evaluate_expert_labels", "evaluate_nodules", "evaluate_external", "rank_classifiers",
                    "rank_segmenters", "rank_nodules", "write_report",
                    local=("assess_labels", "evaluate_expert_labels", "rank_classifiers", "rank_segmenters",
                           "rank_nodules", "write_report"))
