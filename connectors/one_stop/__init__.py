"""``one_stop``: the city's administrative-procedure system, the Centre's reception register."""
