from tests.conformance.suite import ConnectorConformance


class TestHouseholdBusiness(ConnectorConformance):
    source = "household_business"
