"""What happens to one query: policies own every threshold, the engine climbs the tiers, paradigms keep prompt
formats; the router and ladder file readers live here so that serving needs nothing from fitting."""
