-- Every recorded status change of a request is pushed, at its commit, to the change feed
-- of every API node (LISTEN gatehouse_request_events): "event org request STATUS".
-- Notifications arrive in commit order; a node that lost its listening connection reads
-- the events table from where it was once it listens again.
CREATE FUNCTION notify_request_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'gatehouse_request_events',
        NEW.id || ' ' || (SELECT org_id FROM requests WHERE id = NEW.request_id)
            || ' ' || NEW.request_id || ' ' || NEW.status
    );
    RETURN NULL;
END
$$;
CREATE TRIGGER request_events_notify AFTER INSERT ON request_events
    FOR EACH ROW EXECUTE FUNCTION notify_request_event();
