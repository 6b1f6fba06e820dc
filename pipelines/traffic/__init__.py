"""Simulated users as HTTP clients of the live service: their behaviour (users), the client
(client), the day-by-day run against the simulated clock (runner) and its figures (figures)."""
