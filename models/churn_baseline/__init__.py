"""A logistic-regression churn baseline, trained with scikit-learn and served as ONNX.

The same players, split and seed as ``models.churn``; the pipeline (median imputation of the
optional features, standard scaling, logistic regression) is converted with skl2onnx at training
time, so serving needs onnxruntime only, never scikit-learn or a pickle. Requests and answers are
churn's (``ChurnFeatures`` -> ``ChurnPrediction``).
"""

MODEL_NAME = "churn-baseline"
MODEL_TYPE = "logistic_regression"
