"""The stream of the master seed each seeded stage draws from (`numpy.random.default_rng([seed, STREAM, ...])`),
named in one place. A stage of its own stream can add or drop draws without shifting any other stage's. The
numbers are part of every result: changing one changes that stage's outputs (and nih.json / jsrt_nodules.json
record the split's)."""

SPLIT_NIH = 101
TRAIN_CLASSIFIER = 201
TRAIN_SEGMENTER = 301
BOOTSTRAP_CLASSIFIER = 401
BOOTSTRAP_EXPERT_LABELS = 402
SPLIT_JSRT_NODULES = 501
TRAIN_NODULES = 601
BOOTSTRAP_NODULES = 701
BOOTSTRAP_LABEL_QUALITY = 403
BOOTSTRAP_SUBGROUPS = 404
BOOTSTRAP_EXTERNAL = 405
BOOTSTRAP_LEADERBOARD = 406
