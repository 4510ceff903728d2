"""Locust twin of bench/correlated.yaml: check /json, take its token, send it back in a header."""

from locust import FastHttpUser, constant, task


class Correlator(FastHttpUser):
    wait_time = constant(0)

    @task
    def correlated(self) -> None:
        token = None
        with self.client.get("/json", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}, expected 200")
            elif "ok" not in resp.text:
                resp.failure("body does not contain 'ok'")
            else:
                try:
                    token = resp.json()["token"]
                except (ValueError, KeyError, TypeError) as exc:
                    resp.failure(f"no $.token: {exc!r}")
        if token is not None:
            self.client.get("/", headers={"Authorization": f"Bearer {token}"})
