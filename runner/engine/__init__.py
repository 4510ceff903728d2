"""Running virtual users: user lifecycle, flow control, runners."""
