"""``residence``: the Ministry of Public Security residence (cư trú) system."""
