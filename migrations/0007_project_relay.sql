-- Each project may name the relay pool its mail uses when a send names none.
ALTER TABLE projects ADD COLUMN default_relay text;
