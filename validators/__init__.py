"""Checks on proposed personas: schema, declarative rules, fidelity to the sampled facts."""
