"""Locust twin of bench/plain.yaml: GET / in a loop, no think time."""

from locust import FastHttpUser, constant, task


class Looper(FastHttpUser):
    wait_time = constant(0)

    @task
    def index(self) -> None:
        self.client.get("/")
