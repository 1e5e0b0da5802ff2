-- wrk script: sign-in load, POST /api/tokens with the bench user's credentials.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username": "bench", "password": "bench-password"}'
