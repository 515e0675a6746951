"""The stages an alert passes through: dedup, route, enrich, throttle and deliver."""
