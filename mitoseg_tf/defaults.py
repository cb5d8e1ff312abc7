"""Defaults that the command line and the library share, each written once.

This module imports nothing: ``mitoseg --help`` shows these values and must not
load TensorFlow (``benchmarks/cli_startup.py``), while the library modules that
use them (``detection``, ``detector``, ``slides``) do load it. Both sides import
from here; ``tests/cli/test_cli_defaults.py`` checks that every CLI option's
default is the library's.

The training and comparison defaults live in ``mitoseg_tf.config`` (``RunConfig``,
``CompareConfig``), which is equally light.
"""

# Counting (detection.counting): MIDOG's 2 mm^2 region as 10 high-power fields, and the
# Nottingham table's 0.5 mm field; see that module's docstring for the sources.
DEFAULT_HPF10_AREA_MM2 = 2.0
DEFAULT_FIELD_DIAMETER_MM = 0.50

# Matching a detection to a true centre (detection.matching). MITOS-2012 counted a detection as correct
# within 8 um of a true centroid (the ICPR 2012 contest page also quotes 5 um); 5 um is the stricter default.
DEFAULT_MATCH_DISTANCE_UM = 5.0

# The sliding window over an image (inference.sliding_window, Detector): memory and speed, not results.
DEFAULT_WINDOW_TILE = 512
DEFAULT_WINDOW_OVERLAP = 0.25
DEFAULT_WINDOW_BATCH_SIZE = 4
# What runs the network (inference.runtimes): speed, not results. TensorFlow, until a runtime shows a
# speed-up with the same figures on the machines that run slides (benchmarks/slide_runtimes.py).
DEFAULT_RUNTIME = "tensorflow"
RUNTIMES = ("tensorflow", "xla", "onnxruntime")

# Whole slides (slides.predict, slides.tissue, detection.hotspot).
DEFAULT_SLIDE_TILE = 1024  # a tile's core, pixels at the detector's resolution
DEFAULT_SLIDE_MARGIN = 128  # context read around each core, same pixels
# The tissue mask's pixel size: a 1024-px tile at 0.25 um/px spans 32 mask pixels, enough to skip glass between tissue.
DEFAULT_TISSUE_MPP = 8.0
DEFAULT_HOTSPOT_MIN_TISSUE = 0.5  # a candidate hotspot window is at most half on glass
DEFAULT_HOTSPOT_SHAPE = "square"
DEFAULT_HOTSPOTS = 1
DEFAULT_SLIDE_PREFETCH = 4  # tiles read ahead on the background thread
DEFAULT_STATE_EVERY_S = 10.0  # seconds between writes of the resume state: what a kill can cost

# Dataset inspection (data.inspection.summarise): images decoded for pixel statistics.
DEFAULT_INSPECT_MAX_IMAGES = 20
