"""Locust twin of bench/idle.yaml: one GET / and then 30 s of think time."""

from locust import FastHttpUser, constant, task


class Sleeper(FastHttpUser):
    wait_time = constant(30)

    @task
    def index(self) -> None:
        self.client.get("/")
