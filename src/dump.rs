//! `Connection::iterdump`: the database as SQL text, line for line as Python's
//! `sqlite3.Connection.iterdump()` gives it.
