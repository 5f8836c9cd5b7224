# Benchmark evaluation and the report next to the published results.
declare_stage_rules("assess_labels", "evaluate_classifier", "evaluate_segmenter", "evaluate_localisation",
                    "evaluate_expert_labels", "evaluate_nodules", "evaluate_external", "rank_classifiers", "write_report",
                    local=("assess_labels", "evaluate_expert_labels", "write_report"))
