"""route: self-prediction (PA/RPRA), predictors, policy, calibration, collection and the routing server."""
