"""``household_business``: the national household-business registration system."""
