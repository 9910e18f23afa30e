from tests.conformance.suite import ConnectorConformance


class TestOneStop(ConnectorConformance):
    source = "one_stop"
