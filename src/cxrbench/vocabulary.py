"""The names and value ranges the stages share, and nothing else: NIH ChestX-ray14's labels, SCR's objects, JSRT's
image geometry. It imports nothing of ours, so a stage that needs only these words does not depend on (and rerun
for) the dataset readers; the readers take their constants from here too.
"""

# NIH ChestX-ray14's 14 findings, in the order of the release page and the published tables.
LABELS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
BOX_LABELS = LABELS[:8]  # the eight findings BBox_List_2017 has boxes for
NIH_MAX = 255.0  # our NIH stores hold 8-bit pixels

# SCR's five objects (they overlap: the clavicles lie over the lungs), in the masks' bit order of our stores.
OBJECTS = ("right lung", "left lung", "heart", "right clavicle", "left clavicle")
# The objects van Ginneken, Stegmann & Loog (2006) score, each the union of its masks: both lungs as one object
# (the lung fields), both clavicles as one. We score these and the four single objects that are not one of them.
PUBLISHED_OBJECTS = {"lung fields": ("right lung", "left lung"), "heart": ("heart",),
                     "clavicles": ("right clavicle", "left clavicle")}
SCORED_OBJECTS = (*PUBLISHED_OBJECTS, "right lung", "left lung", "right clavicle", "left clavicle")
SCR_MASK_SIZE = 1024
SCR_PIXEL_MM = 0.35

# JSRT: 2048 x 2048 films of 0.175 mm pixels, 12 bits of a 16-bit word.
JSRT_SIZE = 2048
JSRT_PIXEL_MM = 0.175
JSRT_MAX_VALUE = 4095
JSRT_MAX = float(JSRT_MAX_VALUE)  # as the networks' input scaling divides by it
