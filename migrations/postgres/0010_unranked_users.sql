-- Users not yet placed in directory order (search_rank IS NULL) are found at start-up
-- through this index, which holds none of them once they are placed: the check no longer
-- reads every user at every start.
CREATE INDEX users_unranked_idx ON users (id) WHERE search_rank IS NULL;
