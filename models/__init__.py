"""The ML models this service trains and serves, one package each."""
