ALTER TABLE users ADD COLUMN score REAL NOT NULL DEFAULT 0;
CREATE INDEX idx_users_score ON users(score);
