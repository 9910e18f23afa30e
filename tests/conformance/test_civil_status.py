from tests.conformance.suite import ConnectorConformance


class TestCivilStatus(ConnectorConformance):
    source = "civil_status"
