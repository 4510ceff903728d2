def make_payload(user):
    return {"item": 1}
