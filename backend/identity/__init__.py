"""Who is calling: users, teams, API keys, and the Principal every request carries."""
