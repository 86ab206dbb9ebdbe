"""Helpers the tests share: small data sets, model configs, fault injection, lock holders."""
