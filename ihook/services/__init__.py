"""Services: the platform's operations on an explicit session, with no Flask in sight."""
