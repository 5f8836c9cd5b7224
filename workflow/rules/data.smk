# Acquisition (verify, download or synthesise the raw files), decoding into stores, splits and dataset statistics.
declare_stage_rules("acquire_jsrt_scr", "acquire_nih", "acquire_google", "decode_jsrt", "decode_nih", "split_scr",
                    "split_nih", "split_jsrt", "describe_datasets",
                    local=("split_scr", "split_nih", "split_jsrt", "describe_datasets"))
