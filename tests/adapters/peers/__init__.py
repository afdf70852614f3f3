"""Local stand-ins of the production services (Dropbox, OpenAI, Telegram, Instagram Graph, SMTP) on 127.0.0.1.

Each peer speaks the real wire format of its service so the real SDK or client can be pointed at it; each
records what it received and can be told to misbehave (an error status, a delay, a malformed body) on demand.
"""
