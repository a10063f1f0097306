int ember_scheduler_placeholder = 0;
