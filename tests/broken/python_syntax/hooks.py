# A Python module with a syntax error on line 5.
# expect: 5:12: Python syntax error: '{' was never closed

def broken(user):
    return {"item": 1
