-- Surveys: the answer a customer's reply gave to a question step (the first one counts).
CREATE TABLE survey_answers (
    enrolment_id TEXT NOT NULL,
    step TEXT NOT NULL,
    answer TEXT NOT NULL,
    inbound_id TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (enrolment_id, step)
);
