"""Mobile-game player churn: features, synthetic data, training and the serving predictor."""

MODEL_NAME = "churn"
EXPERIMENT_NAME = "churn"
