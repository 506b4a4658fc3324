"""Metrics with k6's names and types: :mod:`~simulator.metrics.histogram` (HDR histograms),
:mod:`~simulator.metrics.registry` (series, the registry), :mod:`~simulator.metrics.recorders`
(the hot path), :mod:`~simulator.metrics.thresholds`."""

from simulator.metrics.histogram import Histogram as Histogram
from simulator.metrics.histogram import bucket_bounds as bucket_bounds
from simulator.metrics.histogram import bucket_index as bucket_index
from simulator.metrics.histogram import bucket_indices as bucket_indices
from simulator.metrics.histogram import fold_columns as fold_columns
from simulator.metrics.recorders import IterationRecorder as IterationRecorder
from simulator.metrics.recorders import RequestRecorder as RequestRecorder
from simulator.metrics.recorders import RequestSample as RequestSample
from simulator.metrics.registry import BUILTIN as BUILTIN
from simulator.metrics.registry import HTTP_TAG_KEYS as HTTP_TAG_KEYS
from simulator.metrics.registry import RECORDED_TAG_KEYS as RECORDED_TAG_KEYS
from simulator.metrics.registry import Counter as Counter
from simulator.metrics.registry import FailureRow as FailureRow
from simulator.metrics.registry import Gauge as Gauge
from simulator.metrics.registry import IntervalStats as IntervalStats
from simulator.metrics.registry import MetricValue as MetricValue
from simulator.metrics.registry import Rate as Rate
from simulator.metrics.registry import Recorder as Recorder
from simulator.metrics.registry import Registry as Registry
from simulator.metrics.registry import Tags as Tags
from simulator.metrics.registry import Trend as Trend
from simulator.metrics.registry import check_threshold_tag_keys as check_threshold_tag_keys
from simulator.metrics.registry import failure_breakdown as failure_breakdown
from simulator.metrics.registry import start_accuracy as start_accuracy
from simulator.metrics.registry import tags_of as tags_of
from simulator.metrics.registry import trend_stat as trend_stat
