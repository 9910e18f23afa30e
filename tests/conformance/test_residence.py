from tests.conformance.suite import ConnectorConformance


class TestResidence(ConnectorConformance):
    source = "residence"
