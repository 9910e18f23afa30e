"""``civil_status``: the Ministry of Justice civil-status (hộ tịch) system."""
