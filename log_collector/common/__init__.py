"""What the client and the server share: the wire vocabulary and the limits.

The only code both sides import; it imports neither.
"""
