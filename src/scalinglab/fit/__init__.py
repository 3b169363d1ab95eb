"""The fitting engine: functional forms, the robust objective, the multi-start optimiser, bootstrap,
diagnostics, parameter expressions and backtests, behind the `ScalingLaw` estimator.
"""
