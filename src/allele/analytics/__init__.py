"""Analytics over plain arrays: forecasting, anomaly detection, alert correlation, root-cause
ranking and configuration recommendations. Knows no store; the CLI face composes the two.

The main names are re-exported here; see the modules for the details:
:mod:`~allele.analytics.forecast`, :mod:`~allele.analytics.trend`,
:mod:`~allele.analytics.predict`, :mod:`~allele.analytics.anomaly`,
:mod:`~allele.analytics.correlate`, :mod:`~allele.analytics.rca`,
:mod:`~allele.analytics.recommend` and :mod:`~allele.analytics.synthetic` (labelled test data).
Heavy libraries (statsmodels, scikit-learn, torch) are imported only when a model is fitted.
"""

from allele.analytics.anomaly import (
    EnsembleDetector,
    IsolationForestDetector,
    OneClassSVMDetector,
    RobustZScoreDetector,
    SeriesDetection,
    detect_series,
    load_detector,
    save_detector,
    score_series,
)
from allele.analytics.correlate import (
    AlertCorrelator,
    AlertEvent,
    AlertGroup,
    InhibitRule,
    IntelligentAlertManager,
    as_alert_event,
)
from allele.analytics.forecast import (
    ARIMAForecaster,
    AutoForecaster,
    BacktestResult,
    DriftForecaster,
    Forecast,
    HorizonForecaster,
    LSTMForecaster,
    NaiveForecaster,
    SeasonalNaiveForecaster,
    backtest,
)
from allele.analytics.predict import MetricPrediction, PerformancePredictor, PredictorValidation
from allele.analytics.rca import (
    Cause,
    RootCauseAnalyzer,
    common_shift,
    diff_environments,
    explain_parameter_change,
    rank_metric_causes,
    rank_parameter_causes,
)
from allele.analytics.rca_params import NO_CLEAR_CAUSE, ParameterVerdict, explain_parameters
from allele.analytics.recommend import (
    NO_BETTER,
    Advice,
    ConfigurationRecommender,
    PerformanceOptimizer,
    Recommendation,
    pareto_front,
)
from allele.analytics.trend import PredictiveAnalyzer, theil_sen_trend

__all__ = [
    "NO_BETTER",
    "NO_CLEAR_CAUSE",
    "ARIMAForecaster",
    "Advice",
    "AlertCorrelator",
    "AlertEvent",
    "AlertGroup",
    "AutoForecaster",
    "BacktestResult",
    "Cause",
    "ConfigurationRecommender",
    "DriftForecaster",
    "EnsembleDetector",
    "Forecast",
    "HorizonForecaster",
    "InhibitRule",
    "IntelligentAlertManager",
    "IsolationForestDetector",
    "LSTMForecaster",
    "MetricPrediction",
    "NaiveForecaster",
    "OneClassSVMDetector",
    "ParameterVerdict",
    "PerformanceOptimizer",
    "PerformancePredictor",
    "PredictiveAnalyzer",
    "PredictorValidation",
    "Recommendation",
    "RobustZScoreDetector",
    "RootCauseAnalyzer",
    "SeasonalNaiveForecaster",
    "SeriesDetection",
    "as_alert_event",
    "backtest",
    "common_shift",
    "detect_series",
    "diff_environments",
    "explain_parameter_change",
    "explain_parameters",
    "load_detector",
    "pareto_front",
    "rank_metric_causes",
    "rank_parameter_causes",
    "save_detector",
    "score_series",
    "theil_sen_trend",
]
