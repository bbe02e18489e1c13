//! Randomised tests: arbitrary and mutated bytes never panic; generated messages round-trip.
